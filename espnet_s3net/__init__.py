"""espnet_s3net: language-adaptive cross-lingual speech representation learning with
sparse sharing sub-networks (S3Net), as an ESPnet extension."""

__version__ = "0.1.0"
