"""The gcp adapter: CloudEvents over Google Cloud Pub/Sub, with polybus's own Pub/Sub emulator."""
