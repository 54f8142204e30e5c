"""Kept so that models registered before the layers moved to `pipeline.core.models` still load:
their pickled `load_context` runs `import pipeline.models` to register the custom layers."""

import pipeline.core.models  # noqa: F401
