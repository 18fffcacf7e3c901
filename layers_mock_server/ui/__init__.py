"""The dashboard: an HTML edge over the control plane, served by the mock itself at /_mock/ui.

It reads through the same control-plane handlers the /_mock/ JSON routes call and changes
state only through those routes (from the page's JavaScript), so it can never show or do what
a script could not. Templates and static files ship inside the package; no CDN, no network.
"""
