"""Foundation of the event path: the exception hierarchy (`errors`) and the one frozen
settings object built at the entry point (`settings`).

May import: nothing of Reckon. Everything else in `reckon.streams` may import it.
"""
