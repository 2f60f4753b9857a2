"""The storage adapter: Ferry's only door to the S3 bucket, and what its answers mean."""
