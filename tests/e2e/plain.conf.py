"""gunicorn settings for tests that set every other setting themselves: gunicorn's defaults.

gunicorn 25.1 and later open a control socket in ~/.gunicorn/ unless told not to: a path that
every gunicorn of the user shares, so parallel test servers would take it from each other.
"""

control_socket_disable = True
