"""The pickle engine: a C-compatible opcode reader and a symbolic interpreter that turn pickle
streams into facts without ever unpickling them.  ``parser.parse`` is the entry point; the fact
contract is in this package's README.md."""
