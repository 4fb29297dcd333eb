# docs/: the project's own description of itself.
EXTRA_DIST += docs/ARCHITECTURE.md docs/PERFORMANCE.md docs/GPU.md docs/PARALLEL.md
