"""OrderService: submit, get, list, cancel and watch orders."""
