"""zhongtai (中台): the platform a consumer-goods brand runs to connect with its dealers, stores and consumers."""

__version__ = "0.1.0"
