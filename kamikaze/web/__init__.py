"""`kamikaze web`: a live page of the queue, served by the web process.

One process holds one subscription to the queue's change signals, however
many pages are open (feed.py); each reading updates the page's state and the
timeline of the top (page.py, timeline.py), serialized once and pushed to
every open page as server-sent events (hub.py). app.py serves the page (the
files in static/) and the event stream; api.py the writes, which guard.py
protects (a token, same-origin requests only); server.py runs it all until
SIGTERM or SIGINT.
"""
