"""Device simulators that publish what real gateways publish, for tests, demos and benchmarks."""
