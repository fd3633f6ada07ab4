"""The dashboard's routes, one router per audience: login, the wearer's pages, the clinician's
review, exports."""
