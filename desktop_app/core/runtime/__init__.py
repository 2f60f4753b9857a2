"""The running program: the Ferry facade, its process for the window, the control
endpoint and the host's services (watcher, system bus, logs, sandbox)."""
