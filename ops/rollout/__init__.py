"""`order-saga deploy rollout`: a new build ramped up in steps, judged, promoted or rolled back.

The package's modules are imported one by one, not through here: the workflow's sandbox imports
this package, and must not import the activities' clients with it.
"""
