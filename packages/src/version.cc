// filled in by the packages work
