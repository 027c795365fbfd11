"""The state stores: a local file with its journal (local), and S3 (s3...)."""
