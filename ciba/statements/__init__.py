"""Statements the ORM compiles once per process, then runs with each call's values (issue 29).

Django builds and compiles a queryset's SQL on every evaluation; for the few statements on the
hot paths (the bearer token's lookup, the consent API's request, the user lookup) that work was
a quarter of the request's CPU, more than the round trip itself. Here each such statement is
compiled by the ORM once, with stand-in values, and then sent with the real values in their
places — only where that provably sends what the ORM would (``select.CompiledSelect`` says
when), and by the ORM itself wherever it cannot be proven.
"""
