"""Rich authorization requests (RFC 9396): the types a client may send, validated, rendered for
the user and narrowed on approval."""
