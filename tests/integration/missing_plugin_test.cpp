// Setup errors that need a special server build (filled in by the wal2json-missing test).
#include <doctest/doctest.h>
