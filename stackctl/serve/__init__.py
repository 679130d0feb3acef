"""Running the stack: the native launcher, the container entry point, the front door, readiness and
token authorization."""
