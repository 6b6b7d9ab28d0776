"""The operator console under `/console`: server-rendered pages (Jinja2 + htmx), zh-CN first."""
