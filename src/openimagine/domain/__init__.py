"""Pure domain types: no I/O, no framework imports, nothing from the rest of the package.

`requests.VideoRequest` is what a door validated; `generation.GenerationJob` is the same
request resolved at submit (inputs stored, exact size and frame count); `jobs` are the store's
records of it; `views` are what the service hands back to the doors.
"""
