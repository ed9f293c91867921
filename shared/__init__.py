"""Code shared by the API server and the worker: settings, task model, errors and the store."""
