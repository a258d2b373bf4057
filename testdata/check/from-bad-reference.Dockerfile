FROM Alpine:3
