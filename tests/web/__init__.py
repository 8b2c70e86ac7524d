"""The HTTP surface: the OpenAPI document, body limits, hostile input and the web page's serving."""
