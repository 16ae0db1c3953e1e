"""Front: the command line, the child-pytest runner and the console."""
