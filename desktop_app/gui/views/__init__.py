"""The window's tabs: transfers, failures, bucket and catalog, watched folders."""
