"""`taskbot console`: a terminal front end on the same core (repl.py), with its own
plain-text renderer (render.py)."""
