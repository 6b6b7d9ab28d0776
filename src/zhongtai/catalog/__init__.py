"""Catalog (商品主数据): products (SKU) identified by GTIN, their packaging levels, and production lots.

Other modules (codes, trace, channel) reach products and lots through `catalog.service` only.
"""
