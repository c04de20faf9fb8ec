"""Developer tooling shared by the tests and the benchmarks: the local servers, process
supervision, sample events, and the generated settings docs. The product never imports it."""
