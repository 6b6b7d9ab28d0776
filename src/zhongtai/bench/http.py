"""`zhongtai bench http` — filled in below."""
