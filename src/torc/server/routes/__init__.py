"""Route modules, one per resource family. Handlers parse, call one service function, return."""
