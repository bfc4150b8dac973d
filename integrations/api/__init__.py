"""The REST API at /api/v2/, one module per resource; config/api.py mounts their routers."""
