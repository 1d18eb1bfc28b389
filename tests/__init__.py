from tests import typechecks  # noqa: F401  (the hook's checker is named tests.typechecks.switchable)
