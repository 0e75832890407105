"""The azure adapter: Azure Event Grid (namespace pull, basic-topic webhook push) and its emulator."""
