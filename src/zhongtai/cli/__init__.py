"""The `zhongtai` command."""
