"""One module per page of the console, each with its router."""
