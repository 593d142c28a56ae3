"""The knowledge-base editor: articles and FAQ entries with versions, publishing to the
document index, an audit log, and an editor for the company graph's products and policies.

    router.py    the HTTP layer (admins only); deps.py its dependencies
    service.py   articles, their versions and the audit log in the database
    flows.py     publish, delete, entity changes: the rows and the hand-over in one step
    submit.py    handing a change to the workers (the queue, or Kafka) and following it
    imports.py   Markdown files and FAQ CSVs through the editor (``parley kb import``)
    entities.py  products and policies in the company graph, as the editor shows them
    render.py    the Markdown preview as safe HTML
"""
