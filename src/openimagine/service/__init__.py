"""The service every door calls, in domain types: submit, poll, cancel, list and delete
videos (`videos`), resolve their inputs (`inputs`), store uploaded media (`media`), and
authenticate keys (`auth`)."""
