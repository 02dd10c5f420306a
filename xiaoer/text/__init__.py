"""Text functions: normalisation, parsing of numbers and ids, contacts, pinyin typos."""
