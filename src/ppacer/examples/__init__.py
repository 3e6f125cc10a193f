"""Example DAGs shipped with ppacer: ``ppacer run ppacer.examples.hello`` runs them."""
