app/main.sh
