"""The Doudian (抖店) open platform: protocol, client, backend, fake, push."""
