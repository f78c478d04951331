"""Default implementations of the pluggable parts named in ``CIBA`` settings.

Each part is a small class chosen by dotted path; sites replace one by pointing the
setting at their own class with the same method. See docs/settings.md.
"""
