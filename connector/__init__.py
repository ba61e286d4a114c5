"""kore-connector: keeps a Kore.ai contact center's contacts in step with a CRM.

Data flows one way: source -> mapping -> keys & dedupe -> batches -> Kore -> state -> report.
"""

__version__ = "0.1.0"
