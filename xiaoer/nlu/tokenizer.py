"""A Rasa tokenizer built on pkuseg, with normalisation and a shop user dictionary.

* Text is normalised first (full-width to half-width, lower case, Traditional to
  Simplified, repeated punctuation and words collapsed, Cantonese and English words,
  homophone typos of shop terms: ``xiaoer.text.normalize.normalize_message``); tokens carry the
  normalised text but their offsets point into the original message.
* The user dictionary is built at training time from the project's domain terms
  (``resources/shop_terms.txt`` or ``dictionary_path``) plus every lookup table and
  synonym of the training data (the catalogue), and persisted with the model.
* Only pkuseg's bundled ``default`` model is used: nothing is downloaded.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from xiaoer.text.normalize import add_lexicon_terms, normalize, normalize_message

logger = logging.getLogger(__name__)

DEFAULT_TERMS = Path(__file__).parent / "resources" / "shop_terms.txt"
USER_DICT_FILE = "user_dict.txt"

_segmenters: dict[tuple[str, ...], Any] = {}
_lock = threading.Lock()


def get_segmenter(terms: tuple[str, ...]) -> Any:
    """One pkuseg instance per distinct dictionary per process (loading costs ~2 s, 700 MB)."""
    with _lock:
        if terms not in _segmenters:
            import pkuseg

            _segmenters.clear()  # keep at most one instance alive
            _segmenters[terms] = pkuseg.pkuseg(model_name="default", user_dict=list(terms))
        return _segmenters[terms]


_shared_models: dict[str, tuple[Any, Any]] = {}


def share_segmenter_model() -> None:
    """Load pkuseg's model (its 2.6 million-entry feature dictionary, about 0.8 GB, and its
    weights) once in this process and let every later ``pkuseg.pkuseg(...)`` reuse it,
    whatever its user dictionary. Called by the Rasa server before it forks its Sanic
    workers: the workers then share those pages copy-on-write (segmenting only reads
    them) instead of loading a copy each. The user dictionary stays per segmenter."""
    import gc

    import pkuseg
    from pkuseg.config import config

    if getattr(pkuseg, "_xiaoer_shared", False):
        return
    stock_features, stock_model = pkuseg.FeatureExtractor, pkuseg.Model

    def loaded() -> tuple[Any, Any]:
        where = config.modelDir
        if where not in _shared_models:
            _shared_models[where] = (stock_features.load(), stock_model.load())
        return _shared_models[where]

    class SharedFeatureExtractor:
        @staticmethod
        def load(model_dir: str | None = None) -> Any:
            return loaded()[0] if model_dir is None else stock_features.load(model_dir)

    class SharedModel:
        @staticmethod
        def load(model_dir: str | None = None) -> Any:
            return loaded()[1] if model_dir is None else stock_model.load(model_dir)

    pkuseg.FeatureExtractor = SharedFeatureExtractor
    pkuseg.Model = SharedModel
    pkuseg._xiaoer_shared = True
    pkuseg.pkuseg(model_name="default", user_dict=None)  # load it now, before the fork
    gc.collect()
    gc.freeze()  # the workers' collections leave these objects' pages alone


def read_terms(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]


def collect_terms(training_data: TrainingData | None, extra_file: Path | None) -> tuple[str, ...]:
    terms: set[str] = set(read_terms(extra_file or DEFAULT_TERMS))
    if training_data is not None:
        for table in training_data.lookup_tables:
            elements = table.get("elements")
            if isinstance(elements, list):
                terms.update(str(e) for e in elements)
        terms.update(str(k) for k in training_data.entity_synonyms)
    # dictionary entries are matched on normalised text, so normalise them too
    normalised = {normalize(t).text.strip() for t in terms}
    return tuple(sorted(t for t in normalised if len(t) > 1))


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True)
class PkusegTokenizer(Tokenizer):
    """Chinese word segmentation with pkuseg."""

    @staticmethod
    def supported_languages() -> list[str] | None:
        return ["zh"]

    @staticmethod
    def required_packages() -> list[str]:
        return ["pkuseg"]  # both the module and the distribution name

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "dictionary_path": None,  # extra terms file; default: resources/shop_terms.txt
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        terms: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(config)
        self._model_storage = model_storage
        self._resource = resource
        self.terms = terms if terms is not None else collect_terms(None, self._terms_file())
        # catalogue names (3+ characters: "马克被" -> 马克杯) join the homophone-typo lexicon
        add_lexicon_terms(t for t in self.terms if len(t) >= 3)

    def _terms_file(self) -> Path | None:
        path = self._config.get("dictionary_path")
        return Path(path) if path else None

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> PkusegTokenizer:
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> PkusegTokenizer:
        try:
            with model_storage.read_from(resource) as directory:
                terms = tuple(read_terms(Path(directory) / USER_DICT_FILE))
        except (ValueError, FileNotFoundError):
            logger.debug("No persisted user dictionary for %s; using defaults.", resource.name)
            terms = None
        return cls(config, model_storage, resource, terms)

    def train(self, training_data: TrainingData) -> Resource:
        self.terms = collect_terms(training_data, self._terms_file())
        add_lexicon_terms(t for t in self.terms if len(t) >= 3)
        with self._model_storage.write_to(self._resource) as directory:
            (Path(directory) / USER_DICT_FILE).write_text(
                "\n".join(self.terms) + "\n", encoding="utf-8"
            )
        return self._resource

    def segment(self, text: str) -> list[Token]:
        norm = normalize_message(text)
        tokens: list[Token] = []
        if not norm.text.strip():
            return tokens
        position = 0
        for word in get_segmenter(self.terms).cut(norm.text):
            word = word.strip()
            if not word:
                continue
            index = norm.text.find(word, position)
            if index < 0:  # should not happen; never lose text because of it
                logger.debug("pkuseg token not found in normalised text")
                continue
            start, end = norm.span(index, index + len(word))
            tokens.append(Token(word, start, end))
            position = index + len(word)
        return tokens

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        text = message.get(attribute) or ""
        return self._apply_token_pattern(self.segment(text))
