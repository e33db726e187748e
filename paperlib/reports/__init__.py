"""Tables and figures of the studies: ``summary`` (markdown tables, figure bookkeeping) and the
``plots*`` modules (one per notebook theme)."""
