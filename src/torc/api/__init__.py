"""Wire schemas shared by the server and its clients."""
