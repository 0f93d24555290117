// The provider page's Java snippet (GET, XML flux in the query string), run against smsq's
// gateway with `java sendSms.java`. smsq's changes, nothing else: the URL's host part, login
// and apiKey read from the environment.
import java.io.*;
import java.net.*;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.xpath.XPath;
import javax.xml.xpath.XPathFactory;
import org.w3c.dom.Document;
public class sendSms {
    public static void main(String[] args) throws Exception {
        String phoneNumber = "33612345678";
        String sender = "allmysms";
        String message = URLEncoder.encode("Envoi de SMS en Java avec www.allmysms.com STOP au 36180", "UTF-8");
        String login = System.getenv("SMSQ_GATEWAY_LOGIN");
        String apiKey = System.getenv("SMSQ_GATEWAY_API_KEY");
        String smsData = "<DATA><MESSAGE><![CDATA[["+message+"]]></MESSAGE><TPOA>"+sender+"</TPOA><SMS><MOBILEPHONE>"+phoneNumber+"</MOBILEPHONE></SMS></DATA>";
        String url = System.getenv("SMSQ_GATEWAY_URL") + "?login=" + login + "&apiKey=" + apiKey + "&smsData=" + smsData;
        // Send GET request
                URL client = new URL(url);
                URLConnection conn = client.openConnection();
                InputStream responseBody = conn.getInputStream();
                // Convert in XML document

                byte[] contents = new byte[1024];

                int bytesRead=0;
                String strFileContents = null;
                while( (bytesRead = responseBody.read(contents)) != -1){
                   strFileContents = new String(contents, 0, bytesRead);
                }

                responseBody.close();
                System.out.println(strFileContents);
    }
}
