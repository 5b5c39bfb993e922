# Shared fixtures for the whole suite live here. pytest-django reads DJANGO_SETTINGS_MODULE from
# pyproject.toml; test folders mirror the code (tests/broker/, tests/dashboard/, ...).
