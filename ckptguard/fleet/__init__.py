"""Fleet scans: audit a whole model registry on a Dask cluster (the ``fleet`` extra).

The driver lists the files (through fsspec), groups identical blobs, ships one small task per
unique blob to the workers (a URL and the configuration — never file contents), and gathers
frozen outcomes that it maps back to every path holding the blob.  Policy, ordering and
reporting are the same library code a single-process scan uses."""
