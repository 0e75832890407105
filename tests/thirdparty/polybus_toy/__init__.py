"""A toy third-party polybus adapter (tests only): see tests/thirdparty/README.md."""
