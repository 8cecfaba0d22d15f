"""refreg's benchmarks: ``python -m bench [--quick]`` writes bench/results.json and bench/results.md."""
