# Only aioxmpp.statemachine is typed here: it is the reference implementation
# that the differential tests and benchmarks drive. The rest of aioxmpp is out
# of scope.
