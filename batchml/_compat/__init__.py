"""Every reach into another library's internals or global state, one module per library,
each with a test that names the version it was checked on."""
