"""The decoding loop and everything strategies and backbones share."""
