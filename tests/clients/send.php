<?php
//config
$url        = getenv('SMSQ_GATEWAY_URL');               // smsq: was 'https://api.www.allmysms.com/http/9.0/sendSms/'
$login      = getenv('SMSQ_GATEWAY_LOGIN');             //votre identifiant allmysms
$apiKey     = getenv('SMSQ_GATEWAY_API_KEY');           //votre clé d'API allmysms
$message    = 'Envoi de SMS test avec AllMySMS.com';    //le message SMS
$sender     = 'allmysms';                               //l’expéditeur, attention pas plus de 11 caractères alphanumériques
$msisdn     = '33612345678';                            //numéro de téléphone du destinataire
$smsData    = "<DATA>
   <MESSAGE><![CDATA[" . $message . "]]></MESSAGE>
   <TPOA>" . $sender . "</TPOA>
   <SMS>
      <MOBILEPHONE>" . $msisdn . "</MOBILEPHONE>
   </SMS>
</DATA>";

$fields = array(
    'login'    => $login,
    'apiKey'   => $apiKey,
    'smsData'  => $smsData,
);

$fieldsString = http_build_query($fields);

try {
    $ch = curl_init();
    curl_setopt($ch, CURLOPT_URL, $url);
    curl_setopt($ch, CURLOPT_POST, count($fields));
    curl_setopt($ch, CURLOPT_POSTFIELDS, $fieldsString);
    curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
    curl_setopt($ch, CURLOPT_CONNECTTIMEOUT, 10);    // permet d’éviter le temps d'attente par défaut : 300 sec - optionnel
    curl_setopt($ch, CURLOPT_LOW_SPEED_LIMIT, 1024); // limite de detection des connexions lentes, en octets/sec (ici : 1 ko) - optionnel
    curl_setopt($ch, CURLOPT_LOW_SPEED_TIME, 1);     // coupe la connexion si en dessous de CURLOPT_LOW_SPEED_LIMIT pendant plus de CURLOPT_LOW_SPEED_TIME - optionnel

    $result = curl_exec($ch);

    echo $result;

    curl_close($ch);

} catch (Exception $e) {
    echo 'Api allmysms injoignable ou trop longue a repondre ' . $e->getMessage();
}
